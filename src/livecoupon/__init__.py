"""livecoupon: coupons issued automatically inside e-commerce live streams."""

from livecoupon.compiled import choose_build

choose_build()  # the compiled hot path, unless LIVECOUPON_PURE=1 or a source changed since the build
