"""Built-in steering methods. Each subpackage registers its :class:`~steerlab.core.methods.MethodSpec`
when imported; steerlab finds them through the ``steerlab.methods`` entry-point group, like any
third-party method."""
