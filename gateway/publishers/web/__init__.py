"""The built-in web dashboard: an aiohttp app serving one page, a JSON API and live updates."""
