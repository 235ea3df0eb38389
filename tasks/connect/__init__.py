"""How ebops reaches a hospital's systems: SSH (ssh.py, paramiko, host keys checked) and the e-bill
database (database/, one interface, one module per dialect, read-only sessions by default)."""
