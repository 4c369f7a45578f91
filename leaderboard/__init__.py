"""Leaderboard: submission schema, replay evaluator, entries and static site."""
