from kws_zoo.layers import plain  # noqa: F401
from kws_zoo.layers import rep_conv  # noqa: F401
from kws_zoo.layers import sinc_conv  # noqa: F401
from kws_zoo.layers import stream  # noqa: F401
from kws_zoo.layers import strided_depthwise  # noqa: F401
from kws_zoo.layers import subspectral_norm  # noqa: F401
from kws_zoo.layers import ternary_pointwise  # noqa: F401
