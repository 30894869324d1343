"""Studies: heads trained beside the served one to answer a question (open set, ablations),
recorded in run.json and the report, never served."""
