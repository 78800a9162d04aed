"""The index stage: where passages, their vectors and their keyword index live (``store/``)."""
