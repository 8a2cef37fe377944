"""
### age_model_retrain: validate the faces, train a candidate, evaluate it, promote it through the gate

Weekly, and by hand with Params. Every training Param defaults to empty, meaning "use the
setting": the profile (`CHECKOUT_AGE_TRAIN_PROFILE`, default `cpu`) gives the training defaults,
`CHECKOUT_AGE_IMAGE_SIZE` / `_BACKBONE` / `_BATCH_SIZE` override single values of it, and
`CHECKOUT_AGE_GATE_MAX_MAE` / `_GATE_TOLERANCE` set the gate (docs/model.md "Profiles").
A Param given here wins over all of them.

1. `validate_faces`: `checkout-age model validate`; stops the run when the set cannot be read.
2. `train_candidate`: trains and **registers** a new version (never promotes it); XCom: the version
   (`--version-only`). Profile `cpu` (feature cache, blocks 6-16 trained: 32.5 min on a quiet
   2-core machine for the ~21k faces) fits the task's 3 h timeout; a run estimated to need
   longer on the CPU than `TRAIN_MINUTES` (e.g. profile `gpu` on a CPU worker) is **refused
   before it starts**, with the estimate in the log. Run `gpu` on a GPU worker:
   `CHECKOUT_AGE_TRAIN_QUEUE=gpu`. Param `teachers` (e.g. `["v0002", "v0005"]`) distils those
   versions into the candidate (38 min for two teachers; test MAE 4.46 against 4.59 without).
3. `evaluate_candidate`: metrics of that version on the faces set's test split (JSON in the log).
4. `promote_candidate`: the gate (test MAE at most `max_mae`, not worse than production by more than
   `tolerance` years). On success `production` moves and the Asset `age_model_production` is updated.

**A refused candidate** leaves production as it was: `model promote` exits 4 and
`promote_candidate` ends **skipped**, not failed (the pipeline worked, the model was not good
enough, and retrying cannot change that); its log says why (e.g. `v0007: test MAE 8.41 is above
the maximum 8.00`), no Asset event is emitted and the run succeeds. A crash still fails the task.
The candidate stays registered for inspection (`checkout-age model list`).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Asset, Param

PROJECT = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("CHECKOUT_AGE_JOBS_VENV") or PROJECT / ".venv")  # the jobs venv
CLI = f"{VENV}/bin/checkout-age"
TRAIN_QUEUE = os.environ.get("CHECKOUT_AGE_TRAIN_QUEUE", "default")  # "gpu" on a GPU worker
TRAIN_TIMEOUT = timedelta(hours=3)
TRAIN_MINUTES = int(TRAIN_TIMEOUT.total_seconds() // 60) - 10  # 10 min for start-up and saving
GATE_REFUSED = 4  # `model promote`'s exit status for a refusal (jobs/cli/registry.py)
PRODUCTION_MODEL = Asset(name="age_model_production", uri="checkout-age://registry/production")
NAME = r"^[a-z0-9_]+$"  # a profile or backbone name: safe on a command line (the CLI checks it)
# Templates, rendered when a task runs. A Param left empty adds no flag: the setting applies.
FACES = "{{ params.faces_dir or var.value.get('checkout_age_faces_dir', '') }}"
CANDIDATE = "{{ ti.xcom_pull(task_ids='train_candidate') }}"
VERSION_REF = r"^[A-Za-z0-9_-]+$"  # a version id or alias (v0002, production)
TRAIN_FLAGS = {"profile": "--profile", "image_size": "--size", "head_epochs": "--head-epochs",
               "epochs": "--epochs", "backbone": "--backbone", "limit": "--limit",
               "distill_weight": "--distill-weight"}
TEACHERS = "{% for teacher in params.teachers or [] %} --teacher {{ teacher }}{% endfor %}"
GATE_FLAGS = {"max_mae": "--max-mae", "tolerance": "--tolerance"}


def _flags(flags: dict[str, str]) -> str:
    """Jinja that adds `FLAG value` for every Param that is set."""
    return "".join(f"{{% if params.{name} is not none %}} {flag} {{{{ params.{name} }}}}"
                   "{% endif %}" for name, flag in flags.items())


TRAIN = (f"{CLI} model train --faces {FACES}{_flags(TRAIN_FLAGS)}{TEACHERS}"
         f" --max-minutes {TRAIN_MINUTES}"
         " --version-only")  # logs on stderr; stdout's one line, the version, is the XCom
PROMOTE = f"{CLI} model promote {CANDIDATE}{_flags(GATE_FLAGS)}"

with DAG(
    dag_id="age_model_retrain",
    doc_md=__doc__,
    schedule="@weekly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["checkout-age", "model", "training"],
    params={  # the schemas keep trigger-form input safe to put on a command line
        "faces_dir": Param(None, type=["null", "string"], pattern=r"^[\w./-]+$",
                           description="labels.csv + final_files/ (default: Variable "
                           "checkout_age_faces_dir)"),
        "profile": Param(None, type=["null", "string"], pattern=NAME,
                         description="cpu, gpu or quick (default: CHECKOUT_AGE_TRAIN_PROFILE)"),
        "image_size": Param(None, type=["null", "integer"], minimum=32, maximum=1024,
                            description="Input side in px (default: the profile's)"),
        "head_epochs": Param(None, type=["null", "integer"], minimum=0,
                             description="Frozen-backbone epochs (default: the profile's)"),
        "epochs": Param(None, type=["null", "integer"], minimum=0,
                        description="Fine-tuning epochs, max (default: the profile's)"),
        "limit": Param(None, type=["null", "integer"], minimum=1, description="Use N faces"),
        "backbone": Param(None, type=["null", "string"], pattern=NAME,
                          description="keras.applications backbone (default: the profile's)"),
        "teachers": Param(None, type=["null", "array"],
                          items={"type": "string", "pattern": VERSION_REF},
                          description="Distil: registered versions whose mean estimate is "
                          "blended into the training targets (e.g. [\"v0002\", \"v0005\"]; "
                          "docs/model.md). Empty: labels only"),
        "distill_weight": Param(None, type=["null", "number"], minimum=0, maximum=1,
                                description="Share of the teachers' estimate in a target "
                                "(default 0.5; only with teachers)"),
        "max_mae": Param(None, type=["null", "number"],
                         description="Gate: highest test MAE, years (default: setting)"),
        "tolerance": Param(None, type=["null", "number"],
                           description="Gate: years worse than production (default: setting)"),
    },
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2),
                  "retry_exponential_backoff": 2.0, "max_retry_delay": timedelta(minutes=30)},
) as dag:
    validate_faces = BashOperator(task_id="validate_faces",
                                  bash_command=f"{CLI} model validate {FACES}")
    train_candidate = BashOperator(task_id="train_candidate", bash_command=TRAIN,
                                   execution_timeout=TRAIN_TIMEOUT, queue=TRAIN_QUEUE)
    evaluate_candidate = BashOperator(
        task_id="evaluate_candidate",
        bash_command=f"{CLI} model evaluate --model {CANDIDATE} --faces {FACES} --json",
        do_xcom_push=False,  # metrics: in the log and the version's metrics.json
    )
    promote_candidate = BashOperator(task_id="promote_candidate", bash_command=PROMOTE,
                                     skip_on_exit_code=GATE_REFUSED, outlets=[PRODUCTION_MODEL])

    validate_faces >> train_candidate >> evaluate_candidate >> promote_candidate
