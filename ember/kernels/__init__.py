"""Fast paths (kernels) that each equal a reference op in ember.ops; see the modules' docstrings."""
