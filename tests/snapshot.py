"""What "leaves existing files as they were" is checked against: every file under a folder."""
import hashlib
import os


def snapshot(d) -> dict:
    """{path relative to d: sha256} of every file under d, subfolders included."""
    out = {}
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, d)] = hashlib.sha256(fh.read()).hexdigest()
    return out
