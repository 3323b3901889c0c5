"""Who may call, what they may reach, and what they may spend: keys, restrictions,
reservations against limits and budgets, and the sensitive-data scan."""
