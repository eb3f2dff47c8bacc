"""Dollar amounts in free-form text: "$23,500", "23500", "23.5k", "$24K", "24 grand", "23,500 dollars".

Numbers that are not prices are skipped: years (a bare 1900-2100), mileage and other units ("35,000 miles",
"30 mpg", "5%"), model names ("F-150"), and anything outside [MIN_PRICE, MAX_PRICE].
"""

from __future__ import annotations

import re

MIN_PRICE, MAX_PRICE = 1_000.0, 1_000_000.0
_PRICE = re.compile(
    r"(?<![\w.,])(?P<dollar>\$\s*)?(?P<num>\d{1,3}(?:,\d{3})+|\d+)(?P<dec>\.\d+)?"
    r"(?:\s*(?P<mult>k|thousand|grand)\b)?(?P<unit>\s*(?:dollars|bucks|usd)\b)?", re.IGNORECASE)
_NOT_PRICE = re.compile(r"\s*-?\s*(?:miles?|mi\b|km\b|mpg|%|percent|years?\b|months?\b|yr|seats?|rows?|doors?|hp\b|"
                        r"horsepower|cylinders?|owners?|am\b|pm\b|o'clock)", re.IGNORECASE)


def parse_prices(text: str) -> list[float]:
  """Every price in `text`, in order of appearance."""
  out = []
  for m in _PRICE.finditer(text):
    value = float(m.group("num").replace(",", "") + (m.group("dec") or ""))
    mult = (m.group("mult") or "").lower()
    if mult:
      value *= 1000.0
    elif _NOT_PRICE.match(text, m.end()):
      continue
    explicit = bool(m.group("dollar") or mult or m.group("unit") or "," in m.group("num"))
    if not explicit and m.group("dec") is None and 1900 <= value <= 2100:
      continue  # a year
    if MIN_PRICE <= value <= MAX_PRICE:
      out.append(round(value, 2))
  return out


def last_price(text: str) -> float | None:
  """The last price mentioned (an offer usually comes after any price it is compared with), or None."""
  prices = parse_prices(text)
  return prices[-1] if prices else None


def format_price(price: float, style: int = 0) -> str:
  """A whole-dollar price in one of four styles: 0 "$23,500", 1 "23,500 dollars", 2 "$23.5k" (multiples of 100
  only, else style 0), 3 "23500". `parse_prices(format_price(p, s)) == [p]`."""
  p = int(round(price))
  style %= 4
  if style == 1:
    return f"{p:,} dollars"
  if style == 2 and p % 100 == 0:
    return f"${p / 1000:g}k"
  if style == 3:
    return f"{p}"
  return f"${p:,}"
