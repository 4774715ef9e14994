"""AutoML, Autopilot's white-box job on AutoGluon: data exploration, candidates, leaderboard,
generated candidate definitions and retraining scripts, explainability, registration."""
