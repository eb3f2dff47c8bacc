"""SeqIO task and TFDS dataset registrations (imported as `mtpo_tasks`; pulls in TensorFlow, so lazily)."""
