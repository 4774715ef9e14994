"""What the prediction endpoint accepts and answers, with no web framework here (see ``requests``)."""
