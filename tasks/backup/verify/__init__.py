"""Backup-restore verification (备份恢复验证, QH; MZ 一.7): locate, validate, restore, verify, clean up."""
