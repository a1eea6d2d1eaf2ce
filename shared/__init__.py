"""What every side of the pipeline needs: settings, label conventions, preprocessing."""
