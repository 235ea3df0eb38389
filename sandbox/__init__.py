"""The sandbox hospital: real PostgreSQL, SSH and S3 servers on 127.0.0.1 (see sandbox/manager.py)."""
