"""Background work: durable job rows, the job engine that runs them, and schedules."""
