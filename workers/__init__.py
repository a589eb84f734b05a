"""arq workers: job functions and the WorkerSettings that configure them."""
