"""The monitored pipeline: pull-request analysis (orchestrator, DeepWiki, knowledge, agents)."""
