"""Training servers' models: the queue that runs jobs, the policy that retrains, the messages that report them."""

from . import messages
from .queue import AlreadyTraining, Display, Ticket, TrainingQueue
from .retrain import RetrainPolicy

__all__ = ["AlreadyTraining", "Display", "RetrainPolicy", "Ticket", "TrainingQueue", "messages"]
