"""Mushroom ID model training: transfer learning, tracking, evaluation, export and registry.

Public API (see README.md): `config.load_config` / `config.TrainConfig` / `config.Settings`,
`train.train`, `export.export`, `evaluate.evaluate_bundle`, `promotion.promote`. Submodules import
TensorFlow; this package's root does not.
"""
