"""One loop per training mode; each reads as a list of phase calls on the controller."""
