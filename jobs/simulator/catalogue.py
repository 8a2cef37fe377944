"""The simulated chain's product catalogue and who buys what (used only by the simulator).

Each category has a base popularity and an age profile: relative buying propensity at anchor ages,
interpolated in between. The profiles are the "real signal" the segment reports should find again
(e.g. energy drinks and snacks skew young, pharmacy and dairy skew old).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# Anchor ages at which each category's age profile is given (linear in between, flat outside).
PROFILE_AGES = (15, 21, 30, 40, 50, 60, 75)


@dataclass(frozen=True)
class Category:
    """A product category of the simulated chain."""

    name: str
    restricted: bool
    price_rub: tuple[float, float]
    popularity: float
    profile: tuple[float, ...]  # propensity at PROFILE_AGES
    items: tuple[str, ...]  # base product names
    variants: tuple[str, ...]  # sizes/brands combined with the base names


CATEGORIES: tuple[Category, ...] = (
    Category("dairy", False, (60, 250), 1.0, (0.5, 0.6, 0.9, 1.0, 1.2, 1.4, 1.5),
             ("Milk", "Kefir", "Tvorog", "Smetana", "Yoghurt"), ("Prostokvashino", "Domik v derevne", "Savushkin")),
    Category("bakery", False, (40, 180), 0.9, (0.6, 0.7, 0.9, 1.0, 1.1, 1.3, 1.5),
             ("Borodinsky bread", "Baton", "Croissant", "Rye bread", "Bublik"), ("fresh", "sliced", "x2")),
    Category("fruit_veg", False, (50, 300), 0.9, (0.4, 0.6, 1.0, 1.1, 1.2, 1.3, 1.2),
             ("Apples", "Bananas", "Potatoes", "Tomatoes", "Cucumbers"), ("1 kg", "pack", "organic")),
    Category("meat", False, (250, 900), 0.6, (0.2, 0.5, 1.0, 1.2, 1.2, 1.1, 0.9),
             ("Chicken breast", "Pork neck", "Beef mince", "Sausages", "Pelmeni"), ("500 g", "1 kg", "farm")),
    Category("fish", False, (200, 1200), 0.3, (0.1, 0.3, 0.7, 1.0, 1.3, 1.5, 1.5),
             ("Herring", "Salmon", "Mackerel", "Crab sticks"), ("chilled", "smoked", "salted")),
    Category("frozen", False, (120, 500), 0.4, (0.8, 1.2, 1.1, 1.0, 0.8, 0.7, 0.6),
             ("Ice cream", "Frozen pizza", "Vareniki", "Frozen vegetables"), ("family", "single", "premium")),
    Category("snacks", False, (50, 200), 0.7, (2.0, 1.8, 1.0, 0.8, 0.5, 0.4, 0.3),
             ("Chips", "Croutons", "Popcorn", "Nuts", "Sunflower seeds"), ("paprika", "salted", "cheese")),
    Category("sweets", False, (50, 400), 0.7, (2.2, 1.5, 1.0, 0.9, 0.8, 0.8, 0.9),
             ("Chocolate bar", "Candies", "Cookies", "Marshmallow", "Gummies"), ("Alenka", "Babaevsky", "Krasny Oktyabr")),
    Category("soft_drinks", False, (60, 200), 0.6, (2.0, 1.6, 1.0, 0.8, 0.6, 0.4, 0.3),
             ("Cola", "Lemonade", "Kvass", "Juice", "Mineral water"), ("0.5 L", "1.5 L", "can")),
    Category("energy_drinks", False, (80, 160), 0.3, (3.5, 2.5, 1.0, 0.5, 0.2, 0.1, 0.05),
             ("Energy drink", "Isotonic", "Energy drink sugar-free"), ("Adrenaline", "Flash", "Burn", "Red Bull")),
    Category("coffee_tea", False, (150, 900), 0.5, (0.3, 0.9, 1.2, 1.2, 1.1, 1.1, 1.0),
             ("Ground coffee", "Coffee beans", "Black tea", "Green tea", "Instant coffee"), ("Jacobs", "Greenfield", "Lipton")),
    Category("baby", False, (150, 1500), 0.25, (0.0, 0.6, 2.5, 1.2, 0.3, 0.4, 0.3),
             ("Diapers", "Baby puree", "Baby formula", "Baby wipes"), ("size 3", "size 4", "stage 1", "stage 2")),
    Category("pet", False, (90, 1200), 0.3, (0.2, 0.6, 1.0, 1.1, 1.2, 1.2, 1.1),
             ("Cat food", "Dog food", "Cat litter", "Pet treats"), ("Whiskas", "Pedigree", "Purina")),
    Category("household", False, (90, 600), 0.4, (0.2, 0.6, 1.1, 1.2, 1.2, 1.1, 1.0),
             ("Detergent", "Dish soap", "Toilet paper", "Bin bags", "Sponges"), ("Fairy", "Tide", "Zewa")),
    Category("personal_care", False, (90, 700), 0.4, (0.8, 1.3, 1.2, 1.0, 0.9, 0.8, 0.7),
             ("Shampoo", "Toothpaste", "Shower gel", "Deodorant", "Razor"), ("Head & Shoulders", "Colgate", "Nivea")),
    Category("ready_meals", False, (150, 450), 0.4, (1.3, 1.6, 1.3, 1.0, 0.7, 0.5, 0.4),
             ("Sandwich", "Salad bowl", "Shawarma", "Sushi set", "Lunch box"), ("classic", "chicken", "vegetarian")),
    Category("pharmacy", False, (100, 600), 0.2, (0.1, 0.2, 0.5, 0.8, 1.3, 2.0, 3.0),
             ("Vitamins", "Plasters", "Cough drops", "Eye drops"), ("small", "large", "forte")),
    Category("beer", True, (70, 250), 0.35, (1.0, 1.8, 1.5, 1.2, 1.0, 0.7, 0.4),
             ("Zhigulevskoe", "Baltika 7", "Ochakovo", "Craft IPA", "Hoegaarden"), ("0.5 L can", "0.5 L bottle", "1.35 L")),
    Category("wine", True, (350, 2500), 0.2, (0.2, 0.7, 1.0, 1.2, 1.4, 1.4, 1.1),
             ("Red wine dry", "White wine dry", "Sparkling wine", "Rose wine"), ("Kuban", "Crimea", "Georgia", "Chile")),
    Category("spirits", True, (450, 3000), 0.15, (0.5, 0.8, 1.0, 1.2, 1.3, 1.1, 0.8),
             ("Vodka", "Cognac", "Whisky", "Rum", "Nastoyka"), ("0.5 L", "0.7 L", "0.25 L")),
    Category("tobacco", True, (180, 350), 0.3, (1.5, 1.6, 1.3, 1.1, 1.0, 0.8, 0.5),
             ("Cigarettes", "Heated tobacco sticks", "Disposable vape", "Cigarillos"), ("Parliament", "Winston", "LD", "Iqos Terea")),
)

RESTRICTED_CATEGORIES = tuple(c.name for c in CATEGORIES if c.restricted)


def category_propensity(age: float) -> np.ndarray:
    """Relative chance (popularity x age profile) of each category for a customer of `age`."""
    return np.array(
        [c.popularity * float(np.interp(age, PROFILE_AGES, c.profile)) for c in CATEGORIES]
    )


def build_catalogue() -> pd.DataFrame:
    """The chain's catalogue: product_id, name, category, age_restricted, list_price_rub, tilt.

    Deterministic (fixed seed, independent of the day). `tilt` in [-1, 1] leans a product young
    (> 0) or old (< 0) within its category, so product-level recommendations carry signal too.
    `list_price_rub` and `tilt` are simulator-internal, not part of `products.csv`.
    """
    rng = np.random.default_rng(20260101)
    rows = []
    for category in CATEGORIES:
        low, high = category.price_rub
        for item in category.items:
            for variant in category.variants:
                rows.append(
                    {
                        "product_id": f"P{len(rows) + 1:04d}",
                        "name": f"{item}, {variant}",
                        "category": category.name,
                        "age_restricted": category.restricted,
                        "list_price_rub": round(float(rng.uniform(low, high)), 2),
                        "tilt": float(rng.uniform(-1, 1)),
                        "popularity": float(rng.pareto(1.5) + 0.2),
                    }
                )
    return pd.DataFrame(rows)
