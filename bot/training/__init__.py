"""Training servers' models: the follower of their jobs, the policy that retrains, the messages that report them."""

from . import messages
from .follower import JobFollower
from .retrain import RetrainPolicy
from .trainings import AlreadyTraining, Display, Ticket, Trainings

__all__ = ["AlreadyTraining", "Display", "JobFollower", "RetrainPolicy", "Ticket", "Trainings", "messages"]
