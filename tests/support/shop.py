"""The small shop the merchant-ledger tests share: a newcomer coupon on first visit, and a
percent coupon for 扣1; each test appends its own ``ledger``."""

SHOP = """
campaign: shop
rooms: [room-1]
coupons:
  welcome: {title: 新人券, kind: threshold, threshold: 99, amount: 20, valid_for: 1h}
  pct: {title: 九折, kind: percent, percent: 10, max_discount: 30, valid_for: 1h}
triggers:
  - {name: newcomer, when: first_visit, coupon: welcome}
  - {name: kou1, when: comment, keywords: [扣1], coupon: pct}
"""
