"""Mushroom ID pipeline: collect to served model (content-addressed), drift monitoring, KFP."""
