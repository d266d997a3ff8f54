"""harness -- what runs around the stages, apart from the benchmark (tasks/) and the model
side (vlm/). One concern per file; none imports torch, so each can be used anywhere:

    harness/cli.py       argparse types and help layout, the flag groups sft.py and ahpo.py share,
                         the default learning rates
    harness/runs.py      run folders: settings, the rerun check, model fingerprints, run.json
    harness/jsonl.py     JSONL reading (every bad line named) and appending; reading records
    harness/chat.py      chat messages and SERG traces
    harness/client.py    the OpenAI-compatible HTTP client (retries, back-off, a thread pool)
    harness/progress.py  progress lines with an ETA on stderr
    harness/plot.py      line plots as PNG (training curves, repro.py's figures)
    harness/report.py    evaluation summaries: summary.json's numbers, table.md, report.html

Modules are imported one by one (`from harness import runs`); this file imports none of them,
so a stage that needs the argparse types loads no HTTP client.
"""
