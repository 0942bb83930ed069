"""Adapters that turn a live platform's own notifications into livecoupon events (SPEC §2)."""
