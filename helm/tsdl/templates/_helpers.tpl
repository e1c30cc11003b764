{{/*
Helpers are prefixed with the chart name. Object shapes mirror tsdl/deploy/rayjob.py, which
`tsdl render` / `tsdl submit` use; tests/deploy requires both to produce the same RayJob.
*/}}

{{/* RayJob name: .Values.name, else the release name (KubeRay caps RayJob names at 47). */}}
{{- define "tsdl.jobName" -}}
{{- default (.Release.Name | trunc 47 | trimSuffix "-") .Values.name -}}
{{- end }}

{{/* Kubernetes recommended labels; pass a dict with "root" and "component". */}}
{{- define "tsdl.labels" -}}
app.kubernetes.io/name: tsdl
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: tsdl
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{/* Where tsdl writes results: the object-store URI, else the mounted PVC. */}}
{{- define "tsdl.storagePath" -}}
{{- .Values.storage.uri | default .Values.storage.mountPath -}}
{{- end }}

{{/* MLflow tracking URI: explicit, else the chart's own server when it is enabled. */}}
{{- define "tsdl.mlflowUri" -}}
{{- if .Values.mlflow.trackingUri -}}
{{ .Values.mlflow.trackingUri }}
{{- else if .Values.mlflow.server.enabled -}}
http://{{ include "tsdl.jobName" . }}-mlflow.{{ .Release.Namespace }}.svc:5000
{{- end -}}
{{- end }}

{{- define "tsdl.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 100
fsGroup: 100
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "tsdl.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: {{ .Values.readOnlyRootFilesystem }}
capabilities:
  drop:
    - ALL
{{- end }}

{{/* Requests equal limits; pass a dict with "cpu", "memory" and optionally "gpu". */}}
{{- define "tsdl.resources" -}}
{{- $amounts := dict "cpu" (toString .cpu) "memory" (toString .memory) -}}
{{- if and .gpu (gt (int .gpu) 0) }}
{{- $_ := set $amounts "nvidia.com/gpu" (int .gpu) -}}
{{- end -}}
requests:
  {{- toYaml $amounts | nindent 2 }}
limits:
  {{- toYaml $amounts | nindent 2 }}
{{- end }}


{{/* A Ray head or worker pod template; pass a dict with root, component, container, resources, placement. */}}
{{- define "tsdl.rayPod" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
metadata:
  labels:
    {{- include "tsdl.labels" (dict "root" $root "component" .component) | nindent 4 }}
spec:
  serviceAccountName: {{ $v.serviceAccount }}
  securityContext:
    {{- include "tsdl.podSecurityContext" $root | nindent 4 }}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- range . }}
    - name: {{ . }}
    {{- end }}
  {{- end }}
  automountServiceAccountToken: {{ and $v.autoscaling (eq .component "ray-head") }}
  {{- with .placement.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .placement.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .placement.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ .container }}
      image: {{ $v.image }}
      imagePullPolicy: {{ $v.imagePullPolicy }}
      env:
        - name: XDG_CACHE_HOME
          value: /tmp/.cache
        - name: MPLCONFIGDIR
          value: /tmp/.matplotlib
        {{- with include "tsdl.mlflowUri" $root }}
        - name: MLFLOW_TRACKING_URI
          value: {{ . | quote }}
        {{- end }}
      {{- with $v.mlflow.credentialsSecret }}
      envFrom:
        - secretRef:
            name: {{ . }}
      {{- end }}
      resources:
        {{- include "tsdl.resources" .resources | nindent 8 }}
      securityContext:
        {{- include "tsdl.containerSecurityContext" $root | nindent 8 }}
      volumeMounts:
        - name: tsdl-config
          mountPath: /etc/tsdl
          readOnly: true
        - name: tmp
          mountPath: /tmp
        - name: dshm
          mountPath: /dev/shm
        {{- if not $v.storage.uri }}
        - name: results
          mountPath: {{ $v.storage.mountPath }}
        {{- end }}
  volumes:
    - name: tsdl-config
      configMap:
        name: {{ include "tsdl.jobName" $root }}-config
    - name: tmp
      emptyDir: {}
    - name: dshm
      emptyDir:
        medium: Memory
        sizeLimit: {{ $v.shmSize | toString }}
    {{- if not $v.storage.uri }}
    - name: results
      persistentVolumeClaim:
        claimName: {{ $v.storage.claimName }}
    {{- end }}
{{- end }}
