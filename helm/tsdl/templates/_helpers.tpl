{{/*
Helpers are prefixed with the chart name. Object shapes mirror tsdl/deploy/rayjob.py, which
`tsdl render` / `tsdl submit` use; tests/deploy requires both to produce the same RayJob.
*/}}

{{/* RayJob name: .Values.name, else the release name (KubeRay caps RayJob names at 47). */}}
{{- define "tsdl.jobName" -}}
{{- default (.Release.Name | trunc 47 | trimSuffix "-") .Values.name -}}
{{- end }}

{{/* Objects a release creates for its namespace are named after the release: the ServiceAccount
`<release>`, the results claim `<release>-results`, the MLflow server `<release>-mlflow`. The default
release `tsdl` thus creates what `tsdl submit` uses (DeployConfig defaults). */}}
{{- define "tsdl.serviceAccount" -}}
{{- .Values.serviceAccount | default .Release.Name -}}
{{- end }}

{{/* N12: the namespace's shared results claim and MLflow server come from the prerequisites
(release `tsdl`, job.enabled=false; k8s/prerequisites.yaml). storage.createClaim and
mlflow.server.enabled default (null) to "not a job release": a prerequisites release creates them,
a job release uses the shared ones instead of leaving a server and kept claims behind per job. */}}
{{- define "tsdl.createClaim" -}}
{{- $c := .Values.storage.createClaim -}}
{{- if and (not .Values.storage.uri) (ternary (not .Values.job.enabled) $c (kindIs "invalid" $c)) -}}true{{- end -}}
{{- end }}

{{- define "tsdl.mlflowServer" -}}
{{- $e := .Values.mlflow.server.enabled -}}
{{- if ternary (not .Values.job.enabled) $e (kindIs "invalid" $e) -}}true{{- end -}}
{{- end }}

{{/* A job release on the shared server (mlflow.server.enabled null): what `tsdl submit` uses. */}}
{{- define "tsdl.sharedMlflow" -}}
{{- if and .Values.job.enabled (kindIs "invalid" .Values.mlflow.server.enabled) -}}true{{- end -}}
{{- end }}

{{- define "tsdl.claimName" -}}
{{- .Values.storage.claimName | default (ternary (printf "%s-results" .Release.Name) "tsdl-results" (eq (include "tsdl.createClaim" .) "true")) -}}
{{- end }}

{{- define "tsdl.mlflowName" -}}
{{- printf "%s-mlflow" .Release.Name -}}
{{- end }}

{{/* Head and submitter image: cpuImage, else image with a `-gpu` tag suffix made `-cpu`. */}}
{{- define "tsdl.cpuImage" -}}
{{- .Values.cpuImage | default (regexReplaceAll "-gpu$" .Values.image "-cpu") -}}
{{- end }}

{{/* A Kubernetes quantity ("16Gi", "500m", "4") as a number (tsdl/deploy/sizing.py). */}}
{{- define "tsdl.bytes" -}}
{{- $q := toString . -}}
{{- $suffix := regexFind "[a-zA-Z]+$" $q -}}
{{- $factors := dict "m" 0.001 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "E" 1e18 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 "Ei" 1152921504606846976.0 -}}
{{- mulf (float64 (trimSuffix $suffix $q)) (get $factors $suffix | default 1.0) -}}
{{- end }}

{{/* Object store bytes of a pod group: object-store-memory if given, else 30% of its memory. */}}
{{- define "tsdl.objectStore" -}}
{{- $given := get (.rayStartParams | default dict) "object-store-memory" -}}
{{- if $given -}}
{{- int64 (float64 $given) -}}
{{- else -}}
{{- int64 (floor (mulf (include "tsdl.bytes" .memory | float64) 0.3)) -}}
{{- end -}}
{{- end }}

{{/* /dev/shm of a pod group; pass dict "root", "store" (bytes) and "where" (head or worker). */}}
{{- define "tsdl.shm" -}}
{{- $v := .root.Values -}}
{{- $size := (get (get $v .where) "shmSize") | default $v.shmSize -}}
{{- if $size -}}
{{- if lt (mulf (include "tsdl.bytes" $size | float64) 0.95) (float64 .store) -}}
{{- fail (printf "shmSize: %v is below the %s's Ray object store (%d bytes), so Ray would spill it to disk; unset shmSize / %s.shmSize, raise it, or set %s.rayStartParams.object-store-memory" $size .where (int64 .store) .where .where) -}}
{{- end -}}
{{- $size | toString -}}
{{- else -}}
{{- printf "%dMi" (int64 (ceil (divf (mulf (float64 .store) 1.1) 1048576.0))) -}}
{{- end -}}
{{- end }}

{{/* GPUs per worker pod: worker.gpu, else 1 when config.resources.use_gpu, else 0
(tsdl/deploy/access.py worker_gpus): one switch turns GPUs on for the config and the pods. */}}
{{- define "tsdl.workerGpu" -}}
{{- if kindIs "invalid" .Values.worker.gpu -}}
{{- ternary 1 0 (eq (toString (dig "resources" "use_gpu" false (.Values.config | default dict))) "true") -}}
{{- else -}}
{{- int .Values.worker.gpu -}}
{{- end -}}
{{- end }}

{{/* What the worker group has at maxReplicas, as Ray counts it (tsdl/deploy/rayjob.py
autoscaler_capacity): num-cpus is the CPU limit rounded up unless rayStartParams set it. */}}
{{- define "tsdl.autoscalerCapacity" -}}
{{- $w := .Values.worker -}}
{{- $params := $w.rayStartParams | default dict -}}
{{- $cpus := ceil (include "tsdl.bytes" $w.cpu | float64) | int64 -}}
{{- if hasKey $params "num-cpus" }}{{ $cpus = float64 (get $params "num-cpus") | int64 }}{{ end -}}
{{- $gpus := include "tsdl.workerGpu" . | int64 -}}
{{- if hasKey $params "num-gpus" }}{{ $gpus = float64 (get $params "num-gpus") | int64 }}{{ end -}}
{{- printf "{\"CPU\": %d, \"GPU\": %d}" (mul $w.maxReplicas $cpus) (mul $w.maxReplicas $gpus) -}}
{{- end }}

{{/* Kubernetes recommended labels; pass a dict with "root" and "component". Ray pods ("rayPod"
true) keep KubeRay's own app.kubernetes.io/name, which its `<job>-head-svc` Service selects on. */}}
{{- define "tsdl.labels" -}}
{{- if not .rayPod }}
app.kubernetes.io/name: tsdl
{{- end }}
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

{{/* MLflow tracking URI of every pod: explicit, else the release's own server when it deploys one,
else the config's own tracking URI when that is a server, else the prerequisites' shared
tsdl-mlflow (by its short name, as `tsdl submit` does: tsdl/deploy/access.py). Empty when the
config turns tracking off; a failure when nothing the pods can reach is left. */}}
{{- define "tsdl.mlflowUri" -}}
{{- $tracking := (.Values.config | default dict).tracking | default dict -}}
{{- $own := $tracking.tracking_uri | default "" | toString -}}
{{- if eq (toString (dig "enabled" true $tracking)) "false" -}}
{{- else if .Values.mlflow.trackingUri -}}
{{ .Values.mlflow.trackingUri }}
{{- else if include "tsdl.mlflowServer" . -}}
http://{{ include "tsdl.mlflowName" . }}.{{ .Release.Namespace }}.svc:5000
{{- else if regexMatch "^(https?|databricks)(://|$)" $own -}}
{{ $own }}
{{- else if include "tsdl.sharedMlflow" . -}}
http://tsdl-mlflow:5000
{{- else -}}
{{- fail (printf "mlflow: the pods need a tracking server (config.tracking.tracking_uri %q is not one; /home/ray is read-only); set mlflow.server.enabled=true, mlflow.trackingUri=http://HOST:5000, or config.tracking.enabled=false" $own) -}}
{{- end -}}
{{- end }}

{{/* A claim the chart creates: ReadWriteMany needs an explicit class (the default class of
EKS/GKE/AKS cannot provide it, and the claim would stay Pending). Any ReadWriteOnce claim (the
chart's own or an existing one such as the prerequisites' tsdl-results) serves one node. */}}
{{- define "tsdl.checkStorage" -}}
{{- $s := .Values.storage -}}
{{- $choices := "storage.uri=s3://BUCKET/PREFIX (recommended across nodes), storage.createClaim=false with storage.claimName=EXISTING_RWX_PVC, or storage.storageClassName=CLASS with ReadWriteMany" -}}
{{- if and (include "tsdl.createClaim" .) (has "ReadWriteMany" $s.accessModes) (not $s.storageClassName) -}}
{{- fail (printf "storage: a ReadWriteMany claim of the default StorageClass stays Pending on most clusters; choose %s" $choices) -}}
{{- end -}}
{{- if and (not $s.uri) (not (has "ReadWriteMany" $s.accessModes)) (gt (int .Values.worker.maxReplicas) 1) -}}
{{- fail (printf "storage: %d worker pods span nodes, which the %s claim %s cannot; choose %s" (int .Values.worker.maxReplicas) (join "," $s.accessModes) (include "tsdl.claimName" .) $choices) -}}
{{- end -}}
{{- end }}

{{/* True when the results claim (the chart's own or an existing one, as storage.accessModes
describes it) is single-node and one worker pod at most mounts it: all Ray pods share a node. */}}
{{- define "tsdl.singleNodeClaim" -}}
{{- $s := .Values.storage -}}
{{- if and (not $s.uri) (not (has "ReadWriteMany" $s.accessModes)) (le (int .Values.worker.maxReplicas) 1) -}}true{{- end -}}
{{- end }}

{{/* On a single-node claim the head follows the worker pod (whose GPU request and selectors pick
the node), unless no worker pod is guaranteed (minReplicas 0): then the worker follows the head. */}}
{{- define "tsdl.headFollowsWorker" -}}
{{- if and (include "tsdl.singleNodeClaim" .) (ge (int .Values.worker.minReplicas) 1) -}}true{{- end -}}
{{- end }}

{{/* data.path must be something the pods can read (tsdl/deploy/access.py check_data_path). */}}
{{- define "tsdl.checkData" -}}
{{- $path := dig "data" "path" "" (.Values.config | default dict) | default "" | toString -}}
{{- $d := .Values.data -}}
{{- if and $path (not (regexMatch "^[a-z][a-z0-9+.-]*://" $path)) -}}
{{- $underVolume := and $d.claimName (or (eq $path $d.mountPath) (hasPrefix (printf "%s/" (trimSuffix "/" $d.mountPath)) $path)) -}}
{{- if not (and (isAbs $path) (or $d.inImage $underVolume)) -}}
{{- fail (printf "config.data.path: %s is not something the pods can read; use an object-store URI (s3://BUCKET/file.csv), a data volume (data.claimName=PVC and config.data.path=%s/file.csv), or a file baked into the image (an absolute path and data.inImage=true)" $path $d.mountPath) -}}
{{- end -}}
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


{{/* A Ray head or worker pod template; pass a dict with root, component, image, resources, placement, shm. */}}
{{- define "tsdl.rayPod" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
metadata:
  labels:
    {{- include "tsdl.labels" (dict "root" $root "component" .component "rayPod" true) | nindent 4 }}
spec:
  serviceAccountName: {{ include "tsdl.serviceAccount" $root }}
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
  {{- $tolerations := .placement.tolerations | default list }}
  {{- $affinity := deepCopy (.placement.affinity | default dict) }}
  {{- /* A ReadWriteOnce volume attaches to one node: the head goes where the worker is (and
  tolerates the worker node's taints), or the worker where the head is (tsdl/deploy/rayjob.py). */}}
  {{- if and (eq .component "ray-head") (include "tsdl.headFollowsWorker" $root) (not $affinity.podAffinity) }}
  {{- $worker := dict "labelSelector" (dict "matchLabels" (dict "app.kubernetes.io/instance" $root.Release.Name "app.kubernetes.io/component" "ray-worker")) "topologyKey" "kubernetes.io/hostname" }}
  {{- $_ := set $affinity "podAffinity" (dict "requiredDuringSchedulingIgnoredDuringExecution" (list $worker)) }}
  {{- range ($v.worker.tolerations | default list) }}
  {{- if not (has . $tolerations) }}{{ $tolerations = append $tolerations . }}{{ end }}
  {{- end }}
  {{- else if and (eq .component "ray-worker") (include "tsdl.singleNodeClaim" $root) (not (include "tsdl.headFollowsWorker" $root)) (not $affinity.podAffinity) }}
  {{- $head := dict "labelSelector" (dict "matchLabels" (dict "app.kubernetes.io/instance" $root.Release.Name "app.kubernetes.io/component" "ray-head")) "topologyKey" "kubernetes.io/hostname" }}
  {{- $_ := set $affinity "podAffinity" (dict "requiredDuringSchedulingIgnoredDuringExecution" (list $head)) }}
  {{- end }}
  {{- with $tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if and (eq .component "ray-head") $v.job.enabled (include "tsdl.mlflowServer" $root) (include "tsdl.mlflowUri" $root) }}
  {{- /* The release's own MLflow server starts with the job (its database migration takes a
  minute or more on a small CPU limit) and the driver, on the head, refuses an unreachable
  server: the head waits for it first (seen on the cluster e2e with the kind preset). It waits
  for an API answer, not /health: a fresh server answered /health at once but its first search
  took over the driver's 5 s preflight on a loaded node (e2e, 2026-12-06). Any HTTP answer will
  do (a refusal is the driver's to name). */}}
  initContainers:
    - name: wait-mlflow
      image: {{ .image }}
      imagePullPolicy: {{ $v.imagePullPolicy }}
      command:
        - python
        - -c
        - |
          import sys, time, urllib.error, urllib.request
          uri, limit = sys.argv[1], 600
          api = uri.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1"
          deadline = time.monotonic() + limit
          while True:
              try:
                  urllib.request.urlopen(api, timeout=30)
                  break
              except urllib.error.HTTPError:
                  break
              except Exception as exc:
                  if time.monotonic() > deadline:
                      sys.exit(f"error: MLflow server {uri} did not answer within {limit} s ({exc})")
                  time.sleep(2)
        - {{ include "tsdl.mlflowUri" $root | quote }}
      resources:
        requests: {cpu: 100m, memory: 128Mi}
        limits: {cpu: 100m, memory: 128Mi}
      securityContext:
        {{- include "tsdl.containerSecurityContext" $root | nindent 8 }}
  {{- end }}
  containers:
    - name: {{ .component }}
      image: {{ .image }}
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
        {{- if and $v.autoscaling (eq .component "ray-head") }}
        - name: TSDL_AUTOSCALER_CAPACITY
          value: {{ include "tsdl.autoscalerCapacity" $root | quote }}
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
        {{- if $v.data.claimName }}
        - name: data
          mountPath: {{ $v.data.mountPath }}
          readOnly: true
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
        sizeLimit: {{ .shm }}
    {{- if not $v.storage.uri }}
    - name: results
      persistentVolumeClaim:
        claimName: {{ include "tsdl.claimName" $root }}
    {{- end }}
    {{- if $v.data.claimName }}
    - name: data
      persistentVolumeClaim:
        claimName: {{ $v.data.claimName }}
        readOnly: true
    {{- end }}
{{- end }}

{{/* N6: fail at install when a claim would use the default StorageClass and the cluster has none
(new EKS clusters since 1.30 have none; the claim, and every pod mounting it, would stay Pending
until the job's deadline). Pass dict "classes" (`lookup` of StorageClasses: an empty map without a
cluster, as in `helm template`, which skips the check) and "what" (the values key to set). */}}
{{- define "tsdl.checkDefaultClass" -}}
{{- if hasKey (.classes | default dict) "items" -}}
{{- $default := false -}}
{{- range .classes.items -}}
{{- $a := .metadata.annotations | default dict -}}
{{- if or (eq (toString (get $a "storageclass.kubernetes.io/is-default-class")) "true") (eq (toString (get $a "storageclass.beta.kubernetes.io/is-default-class")) "true") -}}
{{- $default = true -}}
{{- end -}}
{{- end -}}
{{- if not $default -}}
{{- fail (printf "%s: the cluster has no default StorageClass, so the claim would stay Pending; set %s=CLASS (one of: %s), or mark a class default with kubectl patch storageclass CLASS -p '{\"metadata\":{\"annotations\":{\"storageclass.kubernetes.io/is-default-class\":\"true\"}}}'" .what .what (include "tsdl.classNames" .classes | default "none: install a CSI driver first, e.g. the EBS CSI add-on on EKS")) -}}
{{- end -}}
{{- end -}}
{{- end }}

{{- define "tsdl.classNames" -}}
{{- $names := list -}}
{{- range .items }}{{ $names = append $names .metadata.name }}{{ end -}}
{{- join ", " $names -}}
{{- end }}
