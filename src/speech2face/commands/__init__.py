"""The product's commands (reconstruct, normalize, match, prepare): each module adds its
arguments to a parser (``add_arguments``) and does its work (``run``), importing the heavy parts
inside ``run``. The training, evaluation, serving and export commands live in their packages'
``commands``; ``speech2face.cli`` holds the table of them all."""
