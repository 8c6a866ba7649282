"""``python -m tasks.cli``: the ``eeflow`` command."""

from tasks.cli.root import main

if __name__ == "__main__":
    main()
