"""Approvals (多人负责制度): a plan whose SHA-256 is its identity, approval records under object lock in
the evidence store, the refusals, and the runner that executes an approved plan step by step."""
