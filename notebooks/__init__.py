"""The phase and analysis notebooks, shipped inside the package as `xtl.notebooks` (the folder
stays at the top of the repository; pyproject.toml maps it). `xtl.grid.run` finds them with
importlib.resources, so an installed wheel runs the same notebooks as a checkout."""
