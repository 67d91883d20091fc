"""What the served OpenAPI document tells a user about each operation, in one place.

Why here and not in the route docstrings: a docstring explains the code to whoever
maintains it (locks, sessions, why a check runs where it does); a user of the API needs
what an operation does, who may call it, what it costs and what comes next. The test
``tests/service/test_openapi.py`` fails for a route this module does not describe.

Links name the next operation and where its parameter comes from, so a reader (and
schemathesis' stateful runs) can follow upload -> job -> model -> release -> samples.
"""

from __future__ import annotations

from typing import Any

__all__ = ["OPERATIONS", "document"]

# operationId -> (summary, description)
OPERATIONS: dict[str, tuple[str, str]] = {
    "healthz": ("Liveness", "200 while the process serves requests. No key needed."),
    "readyz": (
        "Readiness",
        "200 when the database answers, 503 otherwise: route traffic only to ready replicas.",
    ),
    "getMetrics": (
        "Prometheus metrics",
        "Request counts and latencies, job and sampler gauges, in Prometheus' text format.",
    ),
    "uploadDataset": (
        "Upload a table or an image set",
        "Owner. A table (.csv, .tsv, either gzip-compressed, or .parquet) or images (.npz, "
        "or a .zip of PNGs in class folders) with the dataset's privacy budget (epsilon, "
        "delta). The file is encrypted at rest under a key of its own. The answer holds the "
        "inferred schema to review: kinds are read from the rows, so they are shown to owners "
        "and auditors only. Next: declare what is public (declarePublicSchema), then train "
        "(createJob).",
    ),
    "listDatasets": ("List datasets", "Owner, auditor. The project's datasets, paged by cursor."),
    "getDataset": (
        "Read a dataset",
        "Owner, auditor. Its schema, budget (spent and remaining) and latest version.",
    ),
    "eraseDataset": (
        "Erase a dataset",
        "Owner. Destroys the dataset's data key (a crypto-erase that covers every copy of its "
        "files, backups included), deletes its files, reports and schedules, and its models "
        "and releases unless keep_models=true. The ledger and the audit log stay.",
    ),
    "addDatasetVersion": (
        "Add a version",
        "Owner. New rows for the same columns; jobs train on the newest version and draw on "
        "the same budget.",
    ),
    "getDatasetBudget": (
        "Read the privacy ledger",
        "Owner, auditor. Every charge and refund of epsilon and delta, with its job, actor, "
        "data version and the job's outcome.",
    ),
    "declarePublicSchema": (
        "Declare the schema",
        "Owner. Column kinds, public bounds and categories, nullability, exclusions and "
        "constraints: the document `sanitas schema` prints, or any part of it. Metadata "
        "declared public is not learned from the rows, which saves epsilon: declare only what "
        "comes from outside the data (a codebook, a standard, the collection form).",
    ),
    "createJob": (
        "Train a generator",
        "Owner. Reserves epsilon and delta from the dataset's budget and queues the job (409 "
        "with what remains when it does not fit). Send an Idempotency-Key header so a retry "
        "is charged once. Next: poll getJob until it ends.",
    ),
    "listJobs": ("List jobs", "Owner, auditor. Filter by state and dataset, paged by cursor."),
    "getJob": (
        "Read a job",
        "Owner, auditor. State, progress (epochs, epsilon spent so far, evaluation steps), its "
        "log and, once it succeeded, the model id. Next: getModel.",
    ),
    "cancelJob": (
        "Cancel a job",
        "Owner. A queued job is refunded in full; one that already read the data keeps its charge.",
    ),
    "listModels": ("List models", "Owner, auditor. Trained models, paged by cursor."),
    "getModel": (
        "Read a model",
        "Owner, auditor. Privacy accounting (epsilon end to end and its parts), schema and the "
        "release gates. Next: read the report (getModelReport) and release it (createRelease).",
    ),
    "getModelReport": (
        "Read a model's report",
        "Owner, auditor. Memorization, fidelity, utility, attack risks and the privacy "
        "accounting, as HTML, PDF or JSON. Reports are computed on real rows: consumers never "
        "see them.",
    ),
    "createRelease": (
        "Release a model",
        "Owner. Approves a model for consumers; refused (409) while a gate fails unless an "
        "override reason is given (audited). Send an Idempotency-Key header. Next: consumers "
        "read the card (getRelease) and download samples (sampleRelease).",
    ),
    "listReleases": (
        "List release cards",
        "Consumer, owner, auditor. What each release is (name, dataset version, generator, "
        "epsilon, columns and their domains); consumers do not see withdrawn ones.",
    ),
    "getRelease": (
        "Read a release card",
        "Consumer, owner, auditor. Everything needed to choose and use a release, including "
        "each column's domain (what where= may name). A withdrawn release answers consumers "
        "410 with the reason.",
    ),
    "withdrawRelease": (
        "Withdraw a release",
        "Owner. For good: consumers get 410 with the reason on the card and on downloads.",
    ),
    "sampleRelease": (
        "Download synthetic rows",
        "Consumer, owner. n rows (or images), streamed as CSV, JSON Lines or Parquet (npz or "
        "a zip of PNGs for images). Sampling is post-processing: it costs no epsilon. "
        "where=column:value (repeatable) fixes columns to values of the card's domains; the "
        "same seed gives the same rows on the same server (a CPU with bfloat16 instructions "
        "rounds the network's products differently from one without, so a few rows may differ).",
    ),
    "createSchedule": (
        "Schedule retraining",
        "Owner. Retrains on the newest version at each fire time of a cron expression (UTC), "
        "each run charged like a job; refused when one run cannot fit the remaining budget. "
        "A run skipped for budget pauses the schedule.",
    ),
    "listSchedules": (
        "List schedules",
        "Owner, auditor. With state, next run and the last runs and skips.",
    ),
    "getSchedule": ("Read a schedule", "Owner, auditor. State, next run, last 20 runs."),
    "updateSchedule": (
        "Change a schedule",
        "Owner. Pause (state: paused), resume (state: active), re-time or change its job; a "
        "resumed schedule fires only after the change, with no make-up runs.",
    ),
    "deleteSchedule": ("Delete a schedule", "Owner. It stops; it stays listed as deleted."),
    "listAuditEvents": (
        "Read the audit log",
        "Auditor, admin. Every state change, download and refusal: who, what, when; filters "
        "by action, target and time, paged by cursor. Each entry carries its hash-chain link.",
    ),
    "auditHeads": (
        "Read the audit chain heads",
        "Auditor, admin. Each chain's last seq and hash: keep them as anchors, to prove later "
        "that nothing up to them was rewritten (sanitas audit verify --anchor).",
    ),
    "exportAuditLog": (
        "Export the audit log",
        "Auditor, admin. Every entry with its hashes, as JSON Lines (checked offline by "
        "sanitas audit verify --file) or CSV for spreadsheets.",
    ),
    "createKey": (
        "Create an API key",
        "Admin. A key for a role in a project, with a label; its secret is in this answer only.",
    ),
    "listKeys": ("List API keys", "Admin. Ids, roles, projects, labels and dates; no secrets."),
    "revokeKey": (
        "Revoke an API key",
        "Admin. The next request with it gets 401. An admin cannot revoke its own key.",
    ),
}

# operationId -> status -> link name -> link
LINKS: dict[str, dict[str, dict[str, Any]]] = {
    "uploadDataset": {"201": {
        "declareSchema": {"operationId": "declarePublicSchema",
                          "parameters": {"dataset_id": "$response.body#/id"}},
        "train": {"operationId": "createJob",
                  "requestBody": {"dataset_id": "$response.body#/id", "epsilon": 1.0}},
        "readBudget": {"operationId": "getDatasetBudget",
                       "parameters": {"dataset_id": "$response.body#/id"}},
    }},
    "createJob": {"202": {
        "poll": {"operationId": "getJob", "parameters": {"job_id": "$response.body#/id"}},
    }},
    "getJob": {"200": {
        "model": {"operationId": "getModel",
                  "parameters": {"model_id": "$response.body#/model_id"}},
    }},
    "getModel": {"200": {
        "report": {"operationId": "getModelReport",
                   "parameters": {"model_id": "$response.body#/id"}},
        "release": {"operationId": "createRelease",
                    "requestBody": {"model_id": "$response.body#/id"}},
    }},
    "createRelease": {"201": {
        "card": {"operationId": "getRelease", "parameters": {"release_id": "$response.body#/id"}},
        "samples": {"operationId": "sampleRelease",
                    "parameters": {"release_id": "$response.body#/id"}},
    }},
    "createSchedule": {"201": {
        "read": {"operationId": "getSchedule", "parameters": {"schedule_id": "$response.body#/id"}},
    }},
}  # fmt: skip

EXAMPLES: dict[str, dict[str, Any]] = {
    "createJob": {"dataset_id": "0f3c9a1b2c3d4e5f6a7b8c9d", "epsilon": 1.0, "epochs": 10,
                  "target_column": "parttime", "audit": False},
    "createRelease": {"model_id": "7a6b5c4d3e2f1a0b9c8d7e6f", "name": "CPS 1988 wages",
                      "description": "Synthetic March 1988 CPS rows, epsilon 1."},
    "declarePublicSchema": {"columns": [
        {"name": "region", "public_categories": ["midwest", "northeast", "south", "west"],
         "nullable": False},
        {"name": "age", "public_bounds": [18, 70]},
    ]},
    "withdrawRelease": {"reason": "consent withdrawn for part of the source table"},
    "createSchedule": {"dataset_id": "0f3c9a1b2c3d4e5f6a7b8c9d", "cron": "@weekly",
                       "job": {"epsilon": 0.5}, "auto_release": False},
    "updateSchedule": {"state": "paused"},
    "createKey": {"role": "consumer", "project": "alpha", "label": "ml-team notebook"},
}  # fmt: skip


def document(spec: dict[str, Any]) -> dict[str, Any]:
    """The generated document with each operation's summary, description, links and
    request example (an operation this module does not describe keeps what it had)."""
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            op_id = operation.get("operationId")
            if op_id in OPERATIONS:
                operation["summary"], operation["description"] = OPERATIONS[op_id]
            for status, links in LINKS.get(op_id, {}).items():
                operation["responses"].setdefault(status, {"description": "done"})["links"] = links
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None and op_id in EXAMPLES:
                body["example"] = EXAMPLES[op_id]
    return spec
