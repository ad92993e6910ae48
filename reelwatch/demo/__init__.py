"""Deterministic demo and test media: titles, reference clips and infringing posts.

Part of the pure core: nothing here imports crawler/, matcher/, workers/ or triage/.
"""
