"""The end-to-end experiment pipeline (issue 6): data -> vocabulary -> SFT -> learned judges -> every method of the
paper's tables x seeds -> evaluation -> result tables. `run.py` is the Gin entry; `stages.py` runs a resumable
stage graph; `plan.py` builds the paper's graph; `tables.py` writes the result tables beside the paper's."""
