"""Did the run teach the model? Base vs tuned on held-out questions, judged locally."""
