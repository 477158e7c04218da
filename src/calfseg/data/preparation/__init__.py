"""The ``calf prepare`` pipeline: plan the cases of a source, preprocess each case in a worker
(resumable per-case parts, sharded across machines), then write the slice cache."""
