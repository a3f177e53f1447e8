"""Training servers' models: the queue that runs jobs, the policy that retrains, the messages that report them."""

from . import messages
from .queue import TrainingQueue
from .retrain import RetrainPolicy
from .trainings import AlreadyTraining, Display, Ticket, Trainings

__all__ = ["AlreadyTraining", "Display", "RetrainPolicy", "Ticket", "TrainingQueue", "Trainings", "messages"]
