"""The command line and the demos: the top layer, which only users and ``python -m scoreflow`` import.

- :mod:`scoreflow.cli.parser`: the ``scoreflow`` argument parser, :func:`parse_command` and :func:`main`;
- one module per command group, each with its commands' typed options (attrs classes), their arguments
  (``add_commands``) and what they do: :mod:`~scoreflow.cli.tool_commands` (plugins, list, presets,
  import-checkpoint, plugin new, bench), :mod:`~scoreflow.cli.training_commands` (train, train-classifier),
  :mod:`~scoreflow.cli.sampling_commands` (sample, tune-schedule), :mod:`~scoreflow.cli.image_commands` (inpaint,
  img2img, encode, interpolate), :mod:`~scoreflow.cli.evaluation_commands` (likelihood, evaluate, calibrate) and
  :mod:`~scoreflow.cli.demo_commands` (demo, digits-demo, oracle-demo);
- what they share: :mod:`~scoreflow.cli.arguments` (argument types and groups), :mod:`~scoreflow.cli.loading`
  (checkpoints, datasets, output folders), :mod:`~scoreflow.cli.sampler_options` (the sampler the options build)
  and :mod:`~scoreflow.cli.guidance` (the guidance of `sample --class`);
- :mod:`scoreflow.cli.mnist_demo` (``scoreflow demo``), :mod:`scoreflow.cli.digits_demo` (``digits-demo``),
  :mod:`scoreflow.cli.oracle_demo` (``oracle-demo``), :mod:`scoreflow.cli.plugin_template` (``plugin new``).
"""

from scoreflow.cli.parser import build_parser, main, parse_command

__all__ = ["build_parser", "main", "parse_command"]
