"""Model monitoring: how far production data has drifted from the data a model was
trained on, how clean it is, how well the model does, and who is told when a signal
breaches its threshold.

- `alerts`: the alert document, and its delivery by email (SMTP) and signed webhooks
"""
