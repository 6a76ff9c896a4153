"""Analytics: SLOs and error budgets, anomaly detection, performance insights, costs."""
