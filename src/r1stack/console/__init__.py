"""The web console r1stack serves at `/`: static assets (plain HTML/CSS/JS, no build step) and the per-key
conversation store the page saves its chats in."""
