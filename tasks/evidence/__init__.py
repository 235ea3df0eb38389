"""Evidence bundles: written (bundle.py), chained and sequenced (chain.py), signed (sign.py), stored in
S3 with object lock or kept in the outbox (store.py), and verified years later (verify.py)."""
