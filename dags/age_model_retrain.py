"""
### age_model_retrain: validate the faces, train a candidate, evaluate it, promote it through the gate

Weekly, and by hand with Params (faces folder, image size, epochs, backbone, gate thresholds).

1. `validate_faces`: `checkout-age model validate`; stops the run when the set cannot be read.
2. `train_candidate`: trains and **registers** a new version (never promotes it); XCom: the version.
3. `evaluate_candidate`: metrics of that version on the faces set's test split (JSON in the log).
4. `promote_candidate`: the gate (test MAE at most `max_mae`, not worse than production by more than
   `tolerance` years). On success `production` moves and the Asset `age_model_production` is updated.

**A refused candidate** leaves production as it was: `promote_candidate` ends **skipped**, not failed
(the pipeline worked, the model was not good enough, and retrying cannot change that), its log says
why (e.g. `v0007: test MAE 8.41 is above the maximum 8.00`), no Asset event is emitted and the run
succeeds. The candidate stays registered for inspection (`checkout-age model list`).
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
PRODUCTION_MODEL = Asset(name="age_model_production", uri="checkout-age://registry/production")
BACKBONES = ["mobilenet_v2", "efficientnet_b0", "efficientnet_v2_b0", "efficientnet_v2_s",
             "convnext_tiny", "resnet50"]
# Templates, rendered when a task runs.
FACES = "{{ params.faces_dir or var.value.get('checkout_age_faces_dir', '') }}"
CANDIDATE = "{{ ti.xcom_pull(task_ids='train_candidate') }}"
TRAIN = (f"set -o pipefail; {CLI} model train --faces {FACES} --size {{{{ params.image_size }}}}"
         " --head-epochs {{ params.head_epochs }} --epochs {{ params.epochs }}"
         " --backbone {{ params.backbone }}{% if params.limit %} --limit {{ params.limit }}{% endif %}"
         f" --json | tee /dev/stderr"  # the summary in the log, then the version (XCom) last
         f" | {VENV}/bin/python -c 'import json, sys; print(json.load(sys.stdin)[\"version\"])'")
GATE_REFUSED = 99  # skip_on_exit_code: `model promote` exits 1 both when refused and on a crash,
PROMOTE = (  # so only its JSON verdict `"promoted": false` turns into a skip
    f"out=$({CLI} model promote {CANDIDATE} --max-mae {{{{ params.max_mae }}}}"
    " --tolerance {{ params.tolerance }} --json); rc=$?; echo \"$out\"; "
    f"[[ $rc -eq 1 && $out == *'\"promoted\": false'* ]] && exit {GATE_REFUSED}; exit $rc")

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
        "image_size": Param(160, type="integer", enum=[96, 128, 160, 192, 224]),
        "head_epochs": Param(2, type="integer", minimum=0, description="Frozen-backbone epochs"),
        "epochs": Param(30, type="integer", minimum=0, description="Fine-tuning epochs (max)"),
        "limit": Param(None, type=["null", "integer"], minimum=1, description="Use N faces"),
        "backbone": Param("mobilenet_v2", type="string", enum=BACKBONES),
        "max_mae": Param(8.0, type="number", description="Gate: highest test MAE (years)"),
        "tolerance": Param(0.10, type="number", description="Gate: years worse than production"),
    },
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2),
                  "retry_exponential_backoff": 2.0, "max_retry_delay": timedelta(minutes=30)},
) as dag:
    validate_faces = BashOperator(task_id="validate_faces",
                                  bash_command=f"{CLI} model validate {FACES}")
    train_candidate = BashOperator(task_id="train_candidate", bash_command=TRAIN,
                                   execution_timeout=timedelta(hours=12), queue=TRAIN_QUEUE)
    evaluate_candidate = BashOperator(
        task_id="evaluate_candidate",
        bash_command=f"{CLI} model evaluate --model {CANDIDATE} --faces {FACES} --json",
        do_xcom_push=False,  # metrics: in the log and the version's metrics.json
    )
    promote_candidate = BashOperator(task_id="promote_candidate", bash_command=PROMOTE,
                                     skip_on_exit_code=GATE_REFUSED, outlets=[PRODUCTION_MODEL])

    validate_faces >> train_candidate >> evaluate_candidate >> promote_candidate
