"""``ember.viz``: pictures of what a network computes, and the classic image filters of the decks.

    plots.py     curves, first-layer filters, feature maps, confusion matrix, autograd graph (PNG;
                 matplotlib and Pillow are the ``viz`` extra: ``pip install 'ember[viz]'``)
    filters.py   classic kernels (Sobel, box, Gaussian, Laplacian, ...) applied with ember's conv2d
    commands.py  ``ember filter`` and ``ember visualize {filters,activations,confusion,graph}``

The plotting functions are re-exported here (``ember.viz.plot_curves``, ...).
"""
from . import filters
from .plots import (INSTALL_HINT, MissingDependencyError, confusion_matrix, conv_layers, feature_maps, graph_dot,
                    load_image, maybe_plot_curves, plot_activations, plot_confusion, plot_curves, plot_filters,
                    plot_graph, save_image)

__all__ = ["INSTALL_HINT", "MissingDependencyError", "confusion_matrix", "conv_layers", "feature_maps", "filters",
           "graph_dot", "load_image", "maybe_plot_curves", "plot_activations", "plot_confusion", "plot_curves",
           "plot_filters", "plot_graph", "save_image"]
