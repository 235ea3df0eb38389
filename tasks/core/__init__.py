"""What every duty shares: the result record and its reason codes, masking, reports, alerts, the
holiday calendar, the check wrapper, atomic file writes."""
