"""What the command line and the workers share: reading a dataset's layout (``scan``), recording
its videos and enqueueing one task each (``ingest``), the leak-free split (``split``), planning and
dispatching training runs (``runs``), the `--then-train` barrier (``barrier``), what the database
says (``status``), and waiting for work to finish (``waiting``). No image or model code.
"""
