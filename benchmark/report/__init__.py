"""From metric files to what a reader sees: tables, plots, qualitative grids and the results README."""
