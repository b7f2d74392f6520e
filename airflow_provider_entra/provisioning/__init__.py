"""Pure pandas HR provisioning pipeline: normalise, validate, plan, guard, stage, reconcile, report."""
