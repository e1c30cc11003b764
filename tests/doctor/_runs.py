"""Real (deliberately broken) training runs, trained locally and logged to an MLflow store.

The loop mirrors `tsdl.train.loop` on one process (AdamW, clipping, one validation per epoch)
so each scenario takes seconds; `test_postmortem` also diagnoses a real `tsdl train` run.
"""

from __future__ import annotations

import math

import torch

from tsdl.config import TsdlConfig
from tsdl.data import prepare_data
from tsdl.losses import build_loss
from tsdl.models import build_model
from tsdl.tracking import MlflowRun
from tsdl.train import model_dims


def train_and_log(config: TsdlConfig, *, batches_per_epoch: int | None = None) -> str:
    """Train ``config`` for ``training.max_epochs`` epochs, log per-epoch metrics; return the run id."""
    prepared = prepare_data(config)
    t = config.training
    torch.manual_seed(t.seed)
    loss_fn = build_loss(config.loss)
    model = build_model(config.model, **model_dims(prepared), loss=loss_fn)
    optimizer = torch.optim.AdamW(model.parameters(), lr=t.optimizer.lr, weight_decay=t.optimizer.weight_decay)
    train, val = prepared.windows("train"), prepared.windows("val")
    with MlflowRun.start(config, data_stats=prepared.stats(), run_name="doctor-case") as run:
        for epoch in range(1, t.max_epochs + 1):
            model.train()
            total, count = 0.0, 0
            for step, batch in enumerate(train.batches(t.batch_size, shuffle=True, seed=t.seed + epoch,
                                                       augment=t.augment)):
                if batches_per_epoch is not None and step >= batches_per_epoch:
                    break
                optimizer.zero_grad()
                loss = loss_fn(model(batch.past, batch.future, batch.static), batch.target)
                if not math.isfinite(float(loss.detach())):
                    total, count = math.nan, 1
                    break
                loss.backward()
                if t.gradient_clip_val is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), t.gradient_clip_val)
                optimizer.step()
                total += float(loss.detach()) * len(batch)
                count += len(batch)
            model.eval()
            with torch.no_grad():
                v_total = v_count = 0
                for batch in val.batches(256, shuffle=False, seed=0):
                    v_total += float(loss_fn(model(batch.past, batch.future, batch.static), batch.target)) * len(batch)
                    v_count += len(batch)
            run.log_epoch(epoch, {"train_loss": total / count, "val_loss": v_total / v_count, "lr": t.optimizer.lr})
        return run.run_id
