"""Push notifications: Standard Webhooks deliveries of job and artifact events."""
