"""Backups: the one reader of a site's backup folder and log, the fresh backup, and verify/ (备份恢复验证)."""
