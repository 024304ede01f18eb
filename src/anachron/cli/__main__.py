"""`python -m anachron.cli`: the same as the `anachron` command."""

from . import main

main()
