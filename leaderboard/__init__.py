"""Leaderboard: submission schema, replay evaluator, entries and static site.

- :mod:`ragenv.leaderboard.submission`: the submission format (pydantic models, the
  published JSON Schema), strict parsing and validation, writing one from an
  ``evaluate`` result.
- :mod:`ragenv.leaderboard.replay`: checks a submission against the frozen environment
  and recomputes every metric by replaying its actions.
- :mod:`ragenv.leaderboard.entries`: scored entries on disk and ``regenerate`` for the baselines.
- :mod:`ragenv.leaderboard.site`: the self-contained static HTML page.

Command line: ``ragenv evaluate ... --submission FILE.json`` and ``ragenv leaderboard
{evaluate,schema,regenerate,build}``.
"""
